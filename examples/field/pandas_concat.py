"""Accumulates incoming batches by rebinding a DataFrame to a bigger one."""
import pandas as pd

df = pd.DataFrame({"a": [], "b": []})


def step():
    global df
    batch = pd.DataFrame({"a": range(100), "b": [1.5] * 100})
    df = pd.concat([df, batch], ignore_index=True)
