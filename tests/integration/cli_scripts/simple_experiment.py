"""daskperiment's simple_experiment.py, for experigraph: run it as a script.

    python simple_experiment.py a=1 b=2 --seed 7
"""
import experigraph as xg

ex = xg.Experiment(id="simple")
a = ex.parameter("a")
b = ex.parameter("b", default=2)


@ex
def prepare_data(a, b):
    return a + b


@ex.result
def calculate_score(s):
    return 10 / s


s = calculate_score(prepare_data(a, b))
