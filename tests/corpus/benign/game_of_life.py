# benign: assistant-style code
def step(grid):
    rows, cols = len(grid), len(grid[0])
    def neighbors(r, c):
        return sum(grid[(r + dr) % rows][(c + dc) % cols]
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)
    return [[1 if (grid[r][c] and neighbors(r, c) in (2, 3)) or (not grid[r][c] and neighbors(r, c) == 3) else 0
             for c in range(cols)] for r in range(rows)]

g = [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
for _ in range(2):
    g = step(g)
    print(g)
