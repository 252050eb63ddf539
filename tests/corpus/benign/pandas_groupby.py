# benign: assistant-style code
import pandas as pd

df = pd.read_csv("orders.csv", parse_dates=["date"])
df = df.dropna(subset=["customer"])
df["month"] = df["date"].dt.to_period("M")
monthly = df.groupby("month")["total"].agg(["sum", "mean", "count"])
monthly.to_csv("monthly.csv")
print(monthly.tail())
