# benign: assistant-style code
def bubble_sort(values):
    values = list(values)
    n = len(values)
    for i in range(n):
        swapped = False
        for j in range(n - i - 1):
            if values[j] > values[j + 1]:
                values[j], values[j + 1] = values[j + 1], values[j]
                swapped = True
        if not swapped:
            break
    return values

print(bubble_sort([5, 2, 9, 1, 5, 6]))
