# benign: assistant-style code
def fit_line(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sxy / sxx
    return slope, my - slope * mx

xs = [1, 2, 3, 4, 5]
ys = [2.1, 4.2, 6.1, 8.3, 9.9]
print(fit_line(xs, ys))
