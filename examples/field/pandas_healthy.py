"""Builds, aggregates and drops a DataFrame per call."""
import pandas as pd


def step():
    df = pd.DataFrame({"k": [i % 7 for i in range(500)], "v": range(500)})
    df.groupby("k")["v"].sum()
