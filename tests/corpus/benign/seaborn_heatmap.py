# benign: assistant-style code
import numpy as np
import seaborn as sns
import matplotlib.pyplot as plt

rng = np.random.default_rng(0)
data = rng.normal(size=(10, 10))
corr = np.corrcoef(data)
sns.heatmap(corr, cmap="vlag", center=0)
plt.tight_layout()
plt.savefig("corr.png")
