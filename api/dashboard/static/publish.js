// The "Publish as preset" form of the trial page.

import { describe, esc, post } from "./util.js";

/** Build the form into `root`; publishing sends study `studyId`'s trial `number`. */
export function publishForm(root, studyId, number) {
  root.innerHTML = `
    <form class="publish">
      <label>Name <input name="name" required placeholder="e.g. digits-mlp"></label>
      <label>Visibility <select name="visibility">
        <option value="team">team</option><option value="public">public</option></select></label>
      <button type="submit">Publish as preset</button>
    </form>
    <p class="published" role="status"></p>
    <p class="publish-error error" role="alert"></p>`;
  const form = root.querySelector("form");
  const published = root.querySelector(".published");
  const failed = root.querySelector(".publish-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    [published.textContent, failed.textContent] = ["", ""];
    const body = { study_id: studyId, trial_number: number, name: form.name.value.trim(), visibility: form.visibility.value };
    try {
      const preset = await post("/api/v1/presets", body);
      published.innerHTML = `Published <a class="ref" href="#/presets">${esc(preset.ref)}</a>`;
    } catch (error) {
      failed.textContent = describe(error);
    }
  });
}
