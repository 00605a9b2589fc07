"""The probe of successive halving in `kdistill compare`: what goes on to full training.

`probe_and_choose` trains every training job briefly (see
`kdistill.compare.jobs.probe`), asks `kdistill.compare.search` which can still
reach the Pareto front, and records the others as "dropped" with the reason.
"""

from __future__ import annotations

import time

from kdistill.compare import jobs, report, search


def probe_and_choose(context, units, records, out, say, timings) -> tuple[list, dict]:
    """Probes every training job; returns the units to continue and each unit's choice.

    Trains every training job (units sharing a trained student) for a
    quarter of the epochs, keeps the jobs that can still reach the front
    (`search.kept`), records the dropped units (status "dropped") in
    `records` and results.json.

    Returns:
        (the kept units, `{unit index in the kept list: the search's record}`).
    """
    probe_epochs = search.probe_epochs(context.epochs)
    groups = jobs.group_units(units)
    if not probe_epochs or len(groups) < 2:
        return units, {}
    say(
        f"Probing {len(groups)} training jobs for {probe_epochs} of {context.epochs} epochs "
        "(successive halving) ...",
        flush=True,
    )
    probes, details = [], []
    probes_started = time.perf_counter()
    for group in groups:
        label, strategy = units[group[0]]
        began = time.perf_counter()
        accuracy, params, summary = jobs.probe(context, strategy, label, probe_epochs)
        key = f"{strategy.name} ({label})" if len(group) == 1 else f"{strategy.name}... ({label})"
        sizes = [units[i][1].quantization for i in group]
        probes.append(search.Probe(key, search.estimated_size(params, sizes), accuracy))
        details.append({"probe_s": round(time.perf_counter() - began, 2), "probe": summary})
        say(f"  probe {key}: validation accuracy {accuracy:.4f}", flush=True)
    timings["probes"] = time.perf_counter() - probes_started
    margin = search.margin(probes, len(context.split.y_val))
    kept_keys = {p.key for p in search.kept(probes, margin)}
    kept_units, searched = [], {}
    for group, probe, detail in zip(groups, probes, details):
        choice = {
            "probe_epochs": probe_epochs,
            "probe_val_accuracy": round(probe.val_accuracy, 5),
            "estimated_size_bytes": probe.size,
            "margin": round(margin, 5),
            "kept": probe.key in kept_keys,
            "reason": search.reason(probe, probes, margin),
            "probe_s": detail["probe_s"],
            "probe_val_history": detail["probe"]["val_history"],
        }
        for index in group:
            label, strategy = units[index]
            if choice["kept"]:
                searched[len(kept_units)] = choice
                kept_units.append(units[index])
            else:
                records.append(
                    {
                        "strategy": strategy.name,
                        "student": label,
                        "status": "dropped",
                        "pareto": False,
                        "seeds": [context.seed],
                        "search": choice,
                        "elapsed_s": detail["probe_s"] if index == group[0] else 0.0,
                    }
                )
    report.write_results(out, records)
    say(
        f"Kept {len(kept_units)} of {len(units)} strategies ({len(kept_keys)} of {len(groups)} "
        f"training jobs; margin {margin:.4f}).",
        flush=True,
    )
    return kept_units, searched
