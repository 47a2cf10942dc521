"""The report's figures, one module per family (speed, memory, stability, compare).

Each figure function takes the run's tidy frame (`data.plot_input`: `to_frame(run)` with each
row's device label and row count M) and its `Context` (the devices' environments, the config),
and returns a matplotlib Figure, or None when the run has nothing it would draw. Every point
drawn is a row of the frame; `normbench.report.plots.figures(run)` is the entry point."""
