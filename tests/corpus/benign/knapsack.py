# benign: assistant-style code
def knapsack(items, capacity):
    dp = [0] * (capacity + 1)
    for weight, value in items:
        for c in range(capacity, weight - 1, -1):
            dp[c] = max(dp[c], dp[c - weight] + value)
    return dp[capacity]

print(knapsack([(2, 3), (3, 4), (4, 5), (5, 6)], 5))
