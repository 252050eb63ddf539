# benign: assistant-style code
def read_numbers(path):
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield float(line)

def running_total(values):
    total = 0.0
    for v in values:
        total += v
        yield total

for t in running_total(read_numbers("numbers.txt")):
    print(t)
