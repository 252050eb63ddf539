# benign: assistant-style code
import statistics

data = [12.5, 14.1, 9.8, 22.3, 17.6, 15.0, 11.2]
print("mean:", statistics.mean(data))
print("median:", statistics.median(data))
print("stdev:", round(statistics.stdev(data), 3))
q = statistics.quantiles(data, n=4)
print("quartiles:", q)
