"""Task functions for the Dask tests, in a module the worker processes can import."""


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def fail(x):
    raise ValueError(f"cannot take {x}")


def scale(x, factor=2, *, offset=0):
    return {"value": x * factor + offset}


def add(x, y):
    return x + y


def multiply(x, y):
    return x * y


def sum_list(values):
    return sum(values)
