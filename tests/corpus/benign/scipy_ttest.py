# benign: assistant-style code
from scipy import stats

a = [5.1, 4.9, 5.6, 5.8, 6.0, 5.5]
b = [6.2, 6.4, 6.1, 5.9, 6.8, 6.6]
t, p = stats.ttest_ind(a, b)
print(f"t={t:.3f} p={p:.4f}", "significant" if p < 0.05 else "not significant")
