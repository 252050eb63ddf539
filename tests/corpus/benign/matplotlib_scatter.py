# benign: assistant-style code
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import random

random.seed(3)
xs = [random.gauss(0, 1) for _ in range(200)]
ys = [x * 0.8 + random.gauss(0, 0.3) for x in xs]
plt.scatter(xs, ys, s=8, alpha=0.6)
plt.xlabel("x")
plt.ylabel("y")
plt.savefig("scatter.png")
