# benign: assistant-style code
import matplotlib.pyplot as plt

fruits = ["apples", "bananas", "cherries", "dates"]
counts = [23, 17, 35, 29]
fig, ax = plt.subplots(figsize=(6, 4))
ax.bar(fruits, counts, color="tab:green")
ax.set_ylabel("count")
ax.set_title("Fruit inventory")
fig.savefig("fruit.png")
