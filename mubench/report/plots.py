"""The report's figures: the trilemma (two panels) and the per-attack heatmap, with stable bytes.

Labels are placed so that they overlap neither each other nor the points: each label tries offsets around its
point, nearest first, and takes the first free one (a leader line joins labels pushed further out).
"""

from __future__ import annotations

from pathlib import Path

SIGNIFICANT_MARK = "*"
_OFFSETS = [(dx * r, dy * r) for r in (7, 16, 28, 42, 60, 80)
            for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1), (0.5, 1),
                           (-0.5, 1), (0.5, -1), (-0.5, -1))]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "mubench"
    return plt


def label_of(row: dict, several_models: bool) -> str:
    return f"{row['model']}/{row['variant']}" if several_models else row["variant"]


def place_labels(ax, points: list[tuple[float, float]], labels: list[str]) -> list:
    """Annotate ``points`` with ``labels`` without overlaps (deterministic; returns the annotations). Call it
    once the figure's layout is final: boxes are measured in display space."""
    renderer = ax.figure.canvas.get_renderer()
    taken = []
    for x, y in points:  # the markers themselves, as small boxes in display space
        px, py = ax.transData.transform((x, y))
        taken.append((px - 6, py - 6, px + 6, py + 6))
    legend = ax.get_legend()
    if legend is not None:
        box = legend.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    frame = ax.get_window_extent(renderer)
    placed = []
    for (x, y), text in zip(points, labels, strict=True):
        best = None
        for dx, dy in _OFFSETS:
            kwargs = {"textcoords": "offset points", "xytext": (dx, dy), "fontsize": 8,
                      "ha": "left" if dx > 0 else "right" if dx < 0 else "center",
                      "va": "bottom" if dy > 0 else "top" if dy < 0 else "center"}
            note = ax.annotate(text, (x, y), **kwargs)  # measured without its leader line
            box = note.get_window_extent(renderer)
            note.remove()
            bounds = (box.x0 - 1, box.y0 - 1, box.x1 + 1, box.y1 + 1)
            inside = (frame.x0 <= bounds[0] and bounds[2] <= frame.x1 and frame.y0 <= bounds[1]
                      and bounds[3] <= frame.y1)
            clashes = sum(_overlaps(bounds, other) for other in taken) + (0 if inside else 100)
            if best is None or clashes < best[0]:
                best = (clashes, kwargs, bounds, max(abs(dx), abs(dy)) > 7)
            if clashes == 0:
                break  # crowded everywhere: the candidate with the fewest clashes is drawn
        _, kwargs, bounds, far = best
        if far:
            kwargs["arrowprops"] = {"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0, "shrinkB": 4}
        taken.append(bounds)
        placed.append(ax.annotate(text, (x, y), **kwargs))
    return placed


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower is better on both), by x."""
    front = [i for i, (x, y) in enumerate(points)
             if not any((ox <= x and oy <= y) and (ox < x or oy < y) for ox, oy in points)]
    return sorted(front, key=lambda i: points[i])


def _errors(values: list[float], intervals: list[list[float] | None]) -> list[list[float]]:
    low = [0.0 if ci is None else max(0.0, v - ci[0]) for v, ci in zip(values, intervals, strict=True)]
    high = [0.0 if ci is None else max(0.0, ci[1] - v) for v, ci in zip(values, intervals, strict=True)]
    return [low, high]


def _panel(ax, rows: list[dict], y_key: str, y_ci_key: str) -> None:
    xs = [r["asr"] for r in rows]
    ys = [r[y_key] for r in rows]
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], color="tab:green", lw=1.2, ls="--", zorder=1,
            label="Pareto front (lower-left is better)")
    ax.errorbar(xs, ys, xerr=_errors(xs, [r["asr_ci"] for r in rows]),
                yerr=_errors(ys, [r[y_ci_key] for r in rows]), fmt="none", ecolor="0.6", elinewidth=0.8,
                capsize=2, zorder=2)
    for r, x, y in zip(rows, xs, ys, strict=True):
        is_base = r["variant"] == "base"
        ax.scatter([x], [y], marker="*" if is_base else "o", s=160 if is_base else 50, zorder=3,
                   color="black" if is_base else "tab:blue", edgecolors="black", linewidths=0.5,
                   label="base model" if is_base and r is rows[0] else None)
    ax.set_xlabel("attack success rate, plain harmful prompts (lower = safer)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)


def trilemma_png(summary: dict, path: Path) -> None:
    """Left: ASR vs over-safety refusal rate; right: ASR vs utility drift (per-token KL from the base). Bars
    are the CIs, the star is the base, the dashed line the Pareto front."""
    plt = pyplot()
    rows = sorted(summary["rows"], key=lambda r: r["variant"] != "base")
    several = len({r["model"] for r in rows}) > 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 5.0), dpi=120)
    left.set_xlim(-0.05, 1.05)
    left.set_ylim(-0.05, 1.05)
    right.set_xlim(-0.05, 1.05)
    top = max([r["drift_kl_ci"][1] if r["drift_kl_ci"] else r["drift_kl"] or 0.0 for r in rows] + [1e-3])
    right.set_ylim(-0.06 * top, 1.25 * top)
    _panel(left, rows, "oversafety_refusal_rate", "oversafety_ci")
    left.set_ylabel("over-safety: benign prompts refused (lower = better)")
    left.set_title("Safety vs over-safety")
    _panel(right, rows, "drift_kl", "drift_kl_ci")
    right.set_ylabel("utility drift: KL(base || variant) per token, nats (lower = better)")
    right.set_title("Safety vs utility drift")
    fig.suptitle("The unlearning trilemma (bars: bootstrap CIs)")
    fig.tight_layout()
    fig.canvas.draw()
    names = [label_of(r, several) for r in rows]
    for ax, key in ((left, "oversafety_refusal_rate"), (right, "drift_kl")):
        place_labels(ax, [(r["asr"], r[key]) for r in rows], names)
    save_png(fig, path, layout=False)


def attacks_heatmap_png(attacks: list[str], summary: dict, path: Path, tamper: list[str] = ()) -> None:
    """Variants x attacks, cell = ASR on the attack seed prompts (first column: no attack; then each prompt
    attack, knowledge-level; then each tamper attack and robust knowledge-level when they ran). ``*`` marks a
    change vs base that is significant (paired McNemar, Holm-corrected); ``†`` a tamper attack's change vs the
    same checkpoint before it."""
    from mubench.report.tamper import BEFORE_MARK

    plt = pyplot()
    rows = summary["rows"]
    several = len({r["model"] for r in rows}) > 1
    labels = [label_of(r, several) for r in rows]
    extra = summary.get("tamper") or {}
    tamper = list(tamper) if extra else []
    columns = ["no attack", *attacks, "knowledge", *tamper, *(["robust"] if extra else [])]
    values, marks = [], []
    for r in rows:
        tests = [r["tests"].get(t, {}) for t in ["seed_asr", *(f"attack/{a}" for a in attacks), "knowledge_asr"]]
        row = [r["seed_asr"], *(r["asr_per_attack"].get(a) for a in attacks), r["knowledge_asr"]]
        mark = [SIGNIFICANT_MARK if t.get("significant") else "" for t in tests]
        if extra:
            e = extra[r["model"]][r["variant"]]
            row += [*(e["seed_asr"].get(n) for n in tamper), e["robust_knowledge_asr"]]
            mark += [BEFORE_MARK if (e["tests"].get(n, {}).get("seed_asr") or {}).get("significant") else ""
                     for n in tamper]
            mark.append(SIGNIFICANT_MARK if e["robust_test"].get("significant") else "")
        values.append(row)
        marks.append(mark)
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(columns), 1.4 + 0.42 * len(rows)), dpi=120)
    image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    if extra:  # the prompt attacks | the tamper attacks
        ax.axvline(len(attacks) + 1.5, color="black", linewidth=1.5)
    for i, (row, mark) in enumerate(zip(grid, marks, strict=True)):
        for j, (v, m) in enumerate(zip(row, mark, strict=True)):
            if v == v:  # not NaN
                ax.text(j, i, f"{100 * v:.0f}{m}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="attack success rate")
    title = "ASR per attack (seed prompts); knowledge-level: broken by any prompt attack\n"
    if extra:
        title += f"right of the line: tamper attacks, robust = any prompt or tamper attack; {BEFORE_MARK} = vs before\n"
    ax.set_title(title + f"{SIGNIFICANT_MARK} = differs from base (paired McNemar, Holm)", fontsize=9)
    save_png(fig, path)


def save_png(fig, path: Path, layout: bool = True) -> None:
    """Write a figure atomically, without the matplotlib version in its metadata (stable bytes); ``layout``:
    tighten the layout first."""
    plt = pyplot()
    if layout:
        fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
