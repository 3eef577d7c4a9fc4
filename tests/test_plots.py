"""plots.py: the adaptation figure draws each curve and, where given, the published reference curve."""

from __future__ import annotations

from metarl import plots

CURVE = {"steps": [0, 1], "mean_return": [-40.0, -12.0], "ci95_return": [1.0, 0.5]}


def test_adaptation_figure_draws_the_reference_dashed_over_the_measured_steps():
    fig = plots.adaptation_figure({"maml-trpo": CURVE}, "2d", ("MAML paper", (-40.4, -11.7, -3.3, -3.2)))
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["maml-trpo", "MAML paper"]
    reference = lines[1]
    assert list(reference.get_xdata()) == [0, 1] and list(reference.get_ydata()) == [-40.4, -11.7]
    assert reference.get_linestyle() == "--"
    plots.save(fig, "/dev/null")


def test_adaptation_figure_without_reference_has_only_the_curves():
    fig = plots.adaptation_figure({"maml-trpo": CURVE, "promp": CURVE})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["maml-trpo", "promp"]
    plots.save(fig, "/dev/null")
