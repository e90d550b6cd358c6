"""``bhyt-theory reproduce``: run every study, judge every claim, write report.md and report.html.

The report opens with a summary of findings and the claims table (verdicts
computed by the rules of ``bhyt_theory.pipeline.claims``, with a "reach" column: the
evidence level, shape and seeds behind each; a banner first when no claim has a
verdict, as after ``--quick``), then has one section per
study: its figure (``bhyt_theory.pipeline.figures``), a short table with a link to the
full CSV, the exact command and its provenance (package version and commit,
torch, device and hardware, date, wall time, sizes). ``report.html`` is
self-contained: figures are inlined as base64 PNG, styles are inline, nothing is
fetched. Progress is printed as each study runs and appended to
``reproduce.log`` in the output folder.

Studies are stored by ``studies.ResultsStore``, keyed by the package's sources:
a rerun reuses current results, so an interrupted reproduction resumes where it
stopped.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; set before figures imports pyplot
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .claims import CLAIMS, Assessment, all_insufficient, assess, assess_statements, with_ladder  # noqa: E402
from .figures import VIEWS as FIGURE_VIEWS  # noqa: E402
from .studies import STUDIES, ResultsStore, StudyResult, provenance  # noqa: E402


def configure_threads() -> int:
    """Set torch's intra-op threads and return the number used.

    ``OMP_NUM_THREADS`` wins when set; otherwise the number of cores this process
    may run on (``os.sched_getaffinity``), never more. torch's own default can
    exceed the cores actually available (containers, CPU quotas), and extra
    threads on a busy machine only wait for each other: on a shared 2-core
    machine ``OMP_NUM_THREADS=1`` is the better choice.
    """
    requested = os.environ.get("OMP_NUM_THREADS", "")
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = int(requested) if requested.isdigit() and int(requested) > 0 else available
    torch.set_num_threads(threads)
    return threads


class _Log:
    """Prints a message and appends it, time-stamped, to ``reproduce.log``."""

    def __init__(self, path: Path, echo: Callable[[str], None]):
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        self.echo(message)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"{stamp} {message}\n")


def markdown_table(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table of ``table`` (no index)."""

    def cell(value) -> str:
        if isinstance(value, float):
            value = float_format.format(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(table: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return table.to_html(index=False, border=0, classes="t", float_format=float_format.format, escape=True)


def _threads(meta: dict) -> str:
    """The torch threads a study started with, and those it ended with where it changed them."""
    text = f"{meta.get('threads', '?')} torch threads"
    return text + (f" ({meta['threads_at_end']} when it ended)" if "threads_at_end" in meta else "")


def threads_line(results: dict[str, StudyResult]) -> str:
    """The torch threads of every study shown, as one sentence (each study's own, from its provenance)."""
    ran = {name: _threads(result.meta) for name, result in results.items() if not result.unavailable}
    if not ran:
        return "No study ran."
    if len(set(ran.values())) == 1:
        return f"Every study ran with {next(iter(ran.values()))}."
    return "Torch threads per study: " + "; ".join(f"{name} {text}" for name, text in ran.items()) + "."


def _provenance_line(meta: dict) -> str:
    return (f"{meta.get('package', '?')}, commit {meta.get('commit', '?')}, torch {meta.get('torch', '?')}, "
            f"device {meta.get('device', '?')} ({meta.get('hardware', '?')}), {_threads(meta)}, "
            f"{meta.get('date', '?')}, wall time {meta.get('wall_seconds', '?')} s, sizes: {meta.get('sizes', '?')}"
            + (" (quick)" if meta.get("quick") else ""))


VERDICT_COLOURS = {"confirmed": "#d9f2d9", "refuted": "#f7d4d4", "qualified": "#fff2cc",
                   "insufficient evidence": "#dde8f7", "not testable here": "#e6e6e6", "not run": "#e6e6e6"}


def banner(assessments: Sequence[Assessment], quick: bool) -> str:
    """The warning that opens the report when no claim has a verdict (empty otherwise)."""
    if not all_insufficient(assessments):
        return ""
    why = "`reproduce --quick` runs smoke-test sizes" if quick else "the results fall short of every rule's minimum"
    return (f"No verdict on the paper's claims: {why}, so every claim C1–C9 is \"insufficient evidence\", "
            "\"not testable here\" or \"not run\". The figures below show that the pipeline runs; they do not "
            "test the paper. Run `make reproduce` (full sizes) for verdicts.")


def table_paper_init(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per layer at the paper's shape: rms of BHyT and RMSNorm (Monte Carlo and mean field), BHyT's largest
    saturated fraction, and its M₂/m(h′) over positions (median and minimum, both sources)."""
    layers, estimate = tables["paper_layers"], tables["paper_estimate"]
    mlp = layers[(layers["sublayer"] == "mlp") & (layers["statistic"] == "rms")]
    rms = mlp.pivot_table(index="layer", columns="scheme", values=["mean", "meanfield"])
    rms.columns = [f"{scheme} rms ({'MC' if source == 'mean' else 'MF'})" for source, scheme in rms.columns]
    saturated = (layers[layers["statistic"] == "saturated_fraction_1"].groupby("layer")["mean"].max()
                 .rename("bhyt saturated |z|≥1"))
    ratio = estimate.groupby("layer").agg(**{"M₂/m median (MC)": ("ratio", "median"), "M₂/m min (MC)": ("ratio", "min"),
                                             "M₂/m median (MF)": ("meanfield_ratio", "median"),
                                             "M₂/m min (MF)": ("meanfield_ratio", "min")})
    return rms.join(saturated).join(ratio).reset_index()


VIEWS = {**FIGURE_VIEWS, "paper_init": (None, table_paper_init)}
"""Study name → (figure function or None, short-table function): ``figures.VIEWS`` and the
paper-shape study's table."""


def _is_claim(assessment: Assessment) -> bool:
    """A claim (C1–C9 of the paper, V1 of this toolkit), not one of the proofs (``proofs/…``)."""
    return not assessment.id.startswith("proofs/")


def proofs_row(assessments: Sequence[Assessment]) -> dict | None:
    """The proofs as one row of the claims table: "N/N proofs: every check passes", or which do not."""
    proofs = [a for a in assessments if not _is_claim(a)]
    if not proofs:
        return None
    passing = [a for a in proofs if a.verdict == "confirmed"]
    others = ", ".join(f"{a.id} ({a.verdict})" for a in proofs if a.verdict != "confirmed")
    why = (f"{len(passing)}/{len(proofs)} proofs: every check passes" if not others
           else f"{len(passing)}/{len(proofs)} proofs have every check passing; not: {others}")
    verdicts = {a.verdict for a in proofs}
    verdict = "refuted" if "refuted" in verdicts else verdicts.pop() if len(verdicts) == 1 else "qualified"
    return {"id": "proofs", "verdict": verdict, "reach": "proof checks", "why": why,
            "paper": "this toolkit's own statements"}


def summary_table(assessments: Sequence[Assessment]) -> pd.DataFrame:
    """The claims table of the report: id, verdict, reach (evidence level, shape, seeds), why (the rule's
    reason), the paper's figures; the toolkit's proofs collapsed into one row (``proofs_row``), listed one
    per row by ``proofs_table``."""
    rows = [{"id": a.id, "verdict": a.verdict, "reach": a.reach, "why": a.reason, "paper": a.expected}
            for a in assessments if _is_claim(a)]
    proofs = proofs_row(assessments)
    return pd.DataFrame(rows + ([proofs] if proofs else []))


def proofs_table(assessments: Sequence[Assessment]) -> pd.DataFrame:
    """One row per proof: id, statement, verdict, why, command."""
    return pd.DataFrame([{"id": a.id, "statement": a.statement, "verdict": a.verdict, "why": a.reason,
                          "command": a.command} for a in assessments if not _is_claim(a)])


def _write_markdown(out_dir: Path, header: list[str], assessments, results, files, command: str,
                    warning: str = "") -> Path:
    lines = header[:1] + (["", f"> **{warning}**"] if warning else []) + header[1:] + ["", "## Summary of findings", ""]
    lines += [f"- **{a.id}** — {a.verdict}: {a.reason}." for a in assessments if _is_claim(a)]
    statements = [a for a in assessments if not _is_claim(a)]
    if statements:
        confirmed = sum(a.verdict == "confirmed" for a in statements)
        lines.append(f"- The toolkit's own statements: {confirmed} of {len(statements)} proofs have every check passing.")
    lines += ["", "## Claims", "", markdown_table(summary_table(assessments)), ""]
    if statements:
        lines += ["<details><summary>The proofs, one row each</summary>", "", markdown_table(proofs_table(assessments)),
                  "", "</details>", ""]
    lines += ["### Each claim in detail", ""]
    for a in filter(_is_claim, assessments):
        lines += [f"**{a.id}. {a.statement}** Source: {a.source}. Rule: {a.rule}.", "", a.explanation, "",
                  f"Command: `{a.command}`", ""]
    for name, result in results.items():
        study = STUDIES[name]
        lines += [f"## {study.title}", "", f"Serves: {', '.join(study.claims)}.", ""]
        if result.unavailable:
            lines += [f"Not run: {result.unavailable}.", ""]
            continue
        if name in files.get("figures", {}):
            lines += [f"![{study.title}]({files['figures'][name].name})", ""]
        lines += [markdown_table(VIEWS[name][1](result.tables)), ""]
        lines += ["Full tables: " + ", ".join(f"[{f}]({f})" for f in result.meta["files"].values()), "",
                  f"Command: `{result.meta['command']}`" + (f" (or `{study.subcommand_line()}`)" if study.subcommand else ""),
                  "", f"Provenance: {_provenance_line(result.meta)}.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table.t{border-collapse:collapse;font-size:0.85em;margin:0.6em 0}
table.t th,table.t td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
table.t th{background:#f2f2f2}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:0.9em}
.prov{font-size:0.8em;color:#555}
img{max-width:100%;border:1px solid #ddd}
.verdict{padding:1px 6px;border-radius:3px;white-space:nowrap}
.banner{background:#fff2cc;border:1px solid #e0c060;padding:0.6em 1em}
"""


def _verdict_cells(table_html: str) -> str:
    for verdict, colour in VERDICT_COLOURS.items():
        table_html = table_html.replace(f"<td>{verdict}</td>",
                                        f'<td><span class="verdict" style="background:{colour}">{verdict}</span></td>')
    return table_html


def _write_html(out_dir: Path, title: str, intro: list[str], assessments, results, files, warning: str = "") -> Path:
    escape = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"]
    if warning:
        parts.append(f"<p class='banner'><b>{escape(warning).replace('`', '')}</b></p>")
    parts += [f"<p>{line}</p>" for line in intro]
    parts.append("<h2>Summary of findings</h2><ul>")
    parts += [f"<li><b>{escape(a.id)}</b> — {escape(a.verdict)}: {escape(a.reason)}.</li>"
              for a in assessments if _is_claim(a)]
    statements = [a for a in assessments if not _is_claim(a)]
    if statements:
        confirmed = sum(a.verdict == "confirmed" for a in statements)
        parts.append(f"<li>The toolkit's own statements: {confirmed} of {len(statements)} proofs have every check "
                     "passing.</li>")
    parts.append("</ul><h2>Claims</h2>")
    parts.append(_verdict_cells(_html_table(summary_table(assessments))))
    if statements:
        parts.append("<details><summary>The proofs, one row each</summary>"
                     + _verdict_cells(_html_table(proofs_table(assessments))) + "</details>")
    parts.append("<h3>Each claim in detail</h3>")
    for a in filter(_is_claim, assessments):
        parts.append(f"<p><b>{escape(a.id)}. {escape(a.statement)}</b> <i>Source: {escape(a.source)}. "
                     f"Rule: {escape(a.rule)}.</i><br>{escape(a.explanation)}<br>"
                     f"<span class='prov'>Command: <code>{escape(a.command)}</code></span></p>")
    for name, result in results.items():
        study = STUDIES[name]
        parts.append(f"<h2 id='{name}'>{escape(study.title)}</h2><p>Serves: {escape(', '.join(study.claims))}.</p>")
        if result.unavailable:
            parts.append(f"<p>Not run: {escape(result.unavailable)}.</p>")
            continue
        if name in files.get("figures", {}):
            encoded = base64.b64encode(files["figures"][name].read_bytes()).decode("ascii")
            parts.append(f"<img alt='{escape(study.title)}' src='data:image/png;base64,{encoded}'>")
        parts.append(_html_table(VIEWS[name][1](result.tables)))
        links = ", ".join(f"<a href='{escape(f)}'>{escape(f)}</a>" for f in result.meta["files"].values())
        command = f"<code>{escape(result.meta['command'])}</code>"
        if study.subcommand:
            command += f" (or <code>{escape(study.subcommand_line())}</code>)"
        parts.append(f"<p>Full tables: {links}<br>Command: {command}<br>"
                     f"<span class='prov'>Provenance: {escape(_provenance_line(result.meta))}.</span></p>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def reproduce(out_dir: Path, quick: bool = False, only: Sequence[str] | None = None,
              echo: Callable[[str], None] = lambda message: print(message, flush=True)) -> dict[str, StudyResult]:
    """Run the studies (all, or ``only``), judge the claims, write ``report.md`` and ``report.html``.

    Returns the study results by name. Studies not run now (``only``) are read
    from ``out_dir`` if stored there, so the claims table always uses the latest
    results available.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / "reproduce.log", echo)
    unknown = sorted(set(only or ()) - set(STUDIES))
    if unknown:
        raise ValueError(f"--only takes study names among {tuple(STUDIES)}, got {unknown}")
    threads = configure_threads()
    started = time.perf_counter()
    names = list(only) if only else list(STUDIES)
    log(f"bhyt-theory reproduce{' --quick' if quick else ''} into {out_dir}: {len(names)} studies, {threads} torch threads")
    store = ResultsStore(out_dir, log=log)
    results: dict[str, StudyResult] = {}
    files: dict[str, dict[str, Path]] = {"figures": {}}
    for index, name in enumerate(names, 1):
        log(f"[{index}/{len(names)}] {STUDIES[name].title}")
        result = store.get(name, quick)
        if result.unavailable:
            log(f"  not run: {result.unavailable}")
        else:
            figure = VIEWS[name][0]
            if figure is not None:
                path = out_dir / f"{name}.png"
                figure(result.tables, path)
                files["figures"][name] = path
            log(f"  {result.meta['wall_seconds']} s ({'stored result reused' if result.meta.get('reused') else 'done'})")
        results[name] = result
    every = with_ladder({**store.collect(list(STUDIES), quick, compute_missing=False), **results}, out_dir)
    assessments = [assess(claim, every) for claim in CLAIMS] + assess_statements(every)
    wall = time.perf_counter() - started
    command = "bhyt-theory reproduce --out " + str(out_dir) + (" --quick" if quick else "") + (
        " --only " + " ".join(only) if only else "")
    shown = {name: every[name] for name in STUDIES if name in results or not every[name].unavailable}
    meta = provenance()
    threads = threads_line(shown)
    intro = [f"Produced by <code>{html.escape(command)}</code> in {wall:.0f} s "
             f"({meta['package']}, commit {meta['commit']}, torch {meta['torch']}, {html.escape(meta['hardware'])}, "
             f"{meta['date']}). {html.escape(threads)}",
             "Verdicts are computed by the rules of <code>bhyt_theory.pipeline.claims</code> from the tables below; "
             "<code>bhyt-theory claims --results " + html.escape(str(out_dir)) + "</code> prints them again. "
             "Paper: Byun et al., arXiv 2601.09719."]
    header = ["# bhyt-theory report", "",
              f"Produced by `{command}` in {wall:.0f} s ({meta['package']}, commit {meta['commit']}, "
              f"torch {meta['torch']}, {meta['hardware']}, {meta['date']}). {threads}", "",
              f"Verdicts are computed by the rules of `bhyt_theory.pipeline.claims` from the tables below; "
              f"`bhyt-theory claims --results {out_dir}` prints them again. Paper: Byun et al., arXiv 2601.09719."]

    for name, result in shown.items():
        if name not in files["figures"] and not result.unavailable and VIEWS[name][0] is not None:
            path = out_dir / f"{name}.png"
            VIEWS[name][0](result.tables, path)
            files["figures"][name] = path
    warning = banner(assessments, quick)
    markdown = _write_markdown(out_dir, header, assessments, shown, files, command, warning)
    page = _write_html(out_dir, "bhyt-theory report", intro, assessments, shown, files, warning)
    log(f"wrote {markdown} and {page} ({wall:.0f} s)")
    return results
