# benign: assistant-style code
import numpy as np

rng = np.random.default_rng(seed=1)
samples = rng.normal(loc=10, scale=2, size=1000)
print("mean %.3f std %.3f" % (samples.mean(), samples.std()))
hist, edges = np.histogram(samples, bins=10)
for count, left in zip(hist, edges):
    print(f"{left:6.2f} {'*' * (count // 10)}")
