# benign: assistant-style code
import csv
import matplotlib.pyplot as plt

labels, sizes = [], []
with open("budget.csv") as fh:
    for row in csv.reader(fh):
        labels.append(row[0])
        sizes.append(float(row[1]))
plt.pie(sizes, labels=labels, autopct="%1.1f%%")
plt.axis("equal")
plt.savefig("budget.png")
