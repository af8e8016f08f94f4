"""The quickstart experiment: three trials on the embedded file backend, then the history.

    python examples/quickstart.py

Trials are recorded in ./experigraph_cache/quickstart/; run it again and the
history grows (trial ids continue).
"""
import experigraph as xg

ex = xg.Experiment(id="quickstart")
a = ex.parameter("a")
b = ex.parameter("b")


@ex
def prepare_data(a, b):
    return a + b


@ex.result
def calculate_score(s):
    return 10 / s


s = calculate_score(prepare_data(a, b))

if __name__ == "__main__":
    ex.set_parameters(a=1, b=2)
    print("score:", s.compute())
    print("score:", ex.set_parameters(b=3).compute())
    try:
        ex.set_parameters(a=1, b=-1).compute()
    except ZeroDivisionError as exc:
        print("failed trial recorded:", exc)
    print(ex.get_history().to_string())
    first = ex.get_history().index[-3]
    print(ex.compare(first, first + 1))
