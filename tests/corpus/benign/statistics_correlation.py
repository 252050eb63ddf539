# benign: assistant-style code
import statistics

hours = [1, 2, 3, 4, 5, 6]
score = [52, 55, 61, 70, 74, 80]
print("correlation:", round(statistics.correlation(hours, score), 3))
slope, intercept = statistics.linear_regression(hours, score)
print(f"score = {slope:.2f} * hours + {intercept:.2f}")
