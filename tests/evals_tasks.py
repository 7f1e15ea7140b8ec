"""Small eval tasks written by the tests, in each framework's local format, from the embedded set.

Inspect: a JSON-lines dataset (``input``, ``target``, ``metadata.category``) and a task file scoring with
``includes()``. lm-eval: a JSON-lines dataset and a task YAML (``generate_until`` with ``exact_match``, or
``multiple_choice``, a loglikelihood type). The direct scoring of the same outputs reads the sim's own
recording of each sample's answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

INSPECT_TASK = """\
from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def lpu_mixed():
    return Task(dataset=json_dataset({data!r}), solver=generate(), scorer=includes())
"""

LM_EVAL_TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: {output_type}
doc_to_text: "{{{{prompt}}}}"
doc_to_target: {target}
{extra}
metric_list:
  - metric: {metric}
    aggregation: mean
    higher_is_better: true
"""


@dataclass(frozen=True)
class EvalSample:
    index: int  # in the embedded set
    category: str
    prompt: str
    target: str


def embedded_samples(per_category: int, categories: tuple[str, ...] = ("qa", "arithmetic")) -> list[EvalSample]:
    """The first ``per_category`` samples of each category: qa targets the reference sentence, arithmetic the
    final number."""
    from scenarios import resolve_dataset

    d = resolve_dataset("embedded")
    out: list[EvalSample] = []
    for cat in categories:
        idx = [i for i, c in enumerate(d.categories) if c == cat][:per_category]
        for i in idx:
            target = d.answers[i] if cat == "arithmetic" and d.answers[i] else d.targets[i]
            out.append(EvalSample(i, cat, d.prompts[i], str(target)))
    return out


def write_inspect_task(directory: Path, samples: list[EvalSample]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "samples.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for s in samples:
            row = {"id": str(s.index), "input": s.prompt, "target": s.target, "metadata": {"category": s.category}}
            f.write(json.dumps(row) + "\n")
    task = directory / "lpu_task.py"
    task.write_text(INSPECT_TASK.format(data=str(data)), encoding="utf-8")
    return task


@dataclass(frozen=True)
class ChoiceItem:
    prompt: str
    choices: tuple[str, ...]
    gold: int


def choice_items(samples: list[EvalSample]) -> list[ChoiceItem]:
    """Multiple-choice items: the sim's own answer to the sample and its answer to the next sample, in either
    order; the gold choice is the sim's own answer for two samples in three, the other for the third (so the
    sim gets two in three right, whichever place its answer holds, and a ranking turned upside down does not)."""
    answers = sim_answers(samples)
    items = []
    for i, s in enumerate(samples):
        own_at = (i // 2) % 2
        other = answers[(i + 1) % len(answers)]
        choices = (answers[i], other) if own_at == 0 else (other, answers[i])
        items.append(ChoiceItem(s.prompt, choices, own_at if i % 3 != 2 else 1 - own_at))
    return items


def write_lm_eval_tasks(directory: Path, samples: list[EvalSample]) -> Path:
    """Two tasks in ``directory`` (the --include_path): ``lpu_gen`` (generate_until) and ``lpu_choice``
    (multiple_choice over :func:`choice_items`, which needs log-probabilities; no delimiter before a choice,
    so each choice is exactly the answer text)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "samples.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"prompt": s.prompt, "answer": s.target}) + "\n")
    choice_data = directory / "choices.jsonl"
    with choice_data.open("w", encoding="utf-8") as f:
        for item in choice_items(samples):
            f.write(json.dumps({"prompt": item.prompt, "choices": list(item.choices), "gold": item.gold}) + "\n")
    gen_extra = 'generation_kwargs:\n  until: ["\\n\\n"]\n  max_gen_toks: 64'
    (directory / "lpu_gen.yaml").write_text(
        LM_EVAL_TASK.format(
            name="lpu_gen", data=data, output_type="generate_until", target='"{{answer}}"', extra=gen_extra,
            metric="exact_match",
        ),
        encoding="utf-8",
    )  # fmt: skip
    (directory / "lpu_choice.yaml").write_text(
        LM_EVAL_TASK.format(
            name="lpu_choice", data=choice_data, output_type="multiple_choice", target="gold",
            extra='doc_to_choice: choices\ntarget_delimiter: ""', metric="acc",
        ),
        encoding="utf-8",
    )  # fmt: skip
    return directory


def sim_answers(samples: list[EvalSample], precision: str = "fp32") -> list[str]:
    """What the sim of ``precision`` answers each sample: its recording, decoded."""
    from scenarios import resolve_dataset
    from scenarios.recording import load_recording
    from sut._sim_config import RECORDINGS_DIR

    d = resolve_dataset("embedded")
    rec = load_recording(RECORDINGS_DIR / f"{precision}.npz")
    return [d.decode(rec.outputs[s.index]) for s in samples]


def includes_score(samples: list[EvalSample], answers: list[str]) -> list[float]:
    """Inspect's includes(): the target, case-folded, inside the answer, case-folded."""
    return [float(s.target.casefold() in a.casefold()) for s, a in zip(samples, answers, strict=True)]


def eval_env(tmp: Path) -> dict[str, str]:
    """The environment of an eval child: this checkout importable, and every directory Inspect and the
    Hugging Face datasets library write to (data, cache, traces) inside the test's tmp dir; local
    datasets only."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("LPUPERF_TOKEN", "LPUPERF_AUTH_TOKEN")}
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XDG_DATA_HOME"] = str(tmp / "xdg-data")
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    env["HF_HOME"] = str(tmp / "hf")
    env["HF_DATASETS_OFFLINE"] = "1"
    return env
