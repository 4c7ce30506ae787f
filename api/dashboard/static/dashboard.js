// The dashboard's shell: sign-in, the team switcher, routing, and the studies list.

import { presetsPage } from "./presets.js";
import { studyPage } from "./study.js";
import { trainersPage } from "./trainers.js";
import { trialPage } from "./trial.js";
import {
  TEAM_KEY, TOKEN_KEY, Unauthorized, api, badge, bar, duration, elapsed, esc, num, poll, when,
} from "./util.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const teamSelect = document.getElementById("team");
let stopPage = () => {};

function signIn(message = "") {
  stopPage();
  stopPage = () => {};
  nav.hidden = true;
  main.innerHTML = `
    <form class="card sign-in">
      <h1>Sign in</h1>
      <p class="muted">Paste an API token: the one <code>hpsearch serve</code> printed at its first
        start, or one from <code>hpsearch admin create-token</code>. It is kept in this tab only.</p>
      <input name="token" type="password" autocomplete="off" placeholder="hps_…" required>
      <button type="submit">Sign in</button>
      <p class="error">${esc(message)}</p>
    </form>`;
  const form = main.querySelector("form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, form.token.value.trim());
    start();
  });
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TEAM_KEY);
  signIn(message);
}

const expired = () => signOut("The token was refused: sign in again.");

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return signIn();
  let me;
  try {
    me = (await api("/api/v1/me")).data;
  } catch (error) {
    return error instanceof Unauthorized ? signOut("That token is not valid.") : signIn(error.message);
  }
  document.getElementById("user").textContent = me.name;
  const chosen = sessionStorage.getItem(TEAM_KEY) ?? "";
  teamSelect.innerHTML = [`<option value="">All teams</option>`]
    .concat(me.teams.map((t) => `<option value="${esc(t.name)}">${esc(t.name)} (${esc(t.role)})</option>`))
    .join("");
  teamSelect.value = me.teams.some((t) => t.name === chosen) ? chosen : "";
  nav.hidden = false;
  route();
}

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  stopPage();
  const root = document.createElement("section");
  main.replaceChildren(root);
  stopPage = page(root, location.hash);
}

/** The page a location hash names: #/studies/ID/trials/N, #/studies/ID, #/presets, #/trainers
 * or #/. */
function page(root, hash) {
  const trial = hash.match(/^#\/studies\/(\d+)\/trials\/(\d+)$/);
  if (trial) return trialPage(root, Number(trial[1]), Number(trial[2]), expired);
  const study = hash.match(/^#\/studies\/(\d+)/);
  if (study) return studyPage(root, Number(study[1]), expired);
  if (hash === "#/presets") return presetsPage(root, expired);
  if (hash === "#/trainers") return trainersPage(root, expired);
  return studiesPage(root);
}

function studyRow(s) {
  return `<tr data-study="${s.id}">
    <td><a href="#/studies/${s.id}">${esc(s.name)}</a></td>
    <td>${esc(s.team)}</td>
    <td>${esc(s.strategy)}</td>
    <td>${badge(s.status)}</td>
    <td>${bar(s.trials_finished, s.budget_trials)} <span class="progress">${s.trials_finished} / ${s.budget_trials}</span></td>
    <td class="num best">${s.best_value === null ? "—" : `${num(s.best_value)} <span class="muted metric">${esc(s.best_metric)}</span>`}</td>
    <td>${when(s.created_at)}</td>
    <td class="num">${duration(elapsed(s.created_at, s.finished_at))}</td>
  </tr>`;
}

function studiesPage(root) {
  root.innerHTML = `
    <h1>Studies</h1>
    <table class="studies">
      <thead><tr><th>Name</th><th>Team</th><th>Strategy</th><th>Status</th><th>Progress</th>
        <th>Best</th><th>Started</th><th>Elapsed</th></tr></thead>
      <tbody></tbody>
    </table>
    <p class="muted empty" hidden>No studies yet: submit one with <code>hpsearch submit</code>.</p>`;
  const body = root.querySelector("tbody");
  return poll(async () => {
    const query = new URLSearchParams({ limit: "200" });
    if (teamSelect.value) query.set("team", teamSelect.value);
    const { data } = await api(`/api/v1/studies?${query}`);
    body.innerHTML = data.data.map(studyRow).join("");
    root.querySelector(".empty").hidden = data.data.length > 0;
  }, expired);
}

teamSelect.addEventListener("change", () => {
  sessionStorage.setItem(TEAM_KEY, teamSelect.value);
  route();
});
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
start();
