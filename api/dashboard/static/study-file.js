// "Copy as study file": a study that runs exactly one trial's config again.

/**
 * The study definition (as JSON, which is also YAML) that reruns `trial`'s full config — its
 * dataset, model and training, seed included — as a single trial with nothing searched.
 */
export function studyFile(study, trial) {
  const { dataset, model, training } = trial.config;
  const objective = study.objectives.map(({ metric, direction }) => ({ metric, direction }));
  return {
    name: `${study.name}-trial-${trial.number}`.slice(0, 200),
    dataset,
    model,
    training,
    strategy: { type: "random", seed: 0 },
    objective: objective.length === 1 ? objective[0] : objective,
    budget: { trials: 1, parallelism: 1 },
  };
}

/** The study file as text to paste into a .json or .yaml file. */
export function studyFileText(study, trial) {
  return `${JSON.stringify(studyFile(study, trial), null, 2)}\n`;
}
