# benign: assistant-style code
inventory = {}
commands = ["add apple 3", "add pear 2", "remove apple 1", "list"]
for line in commands:
    parts = line.split()
    if parts[0] == "add":
        inventory[parts[1]] = inventory.get(parts[1], 0) + int(parts[2])
    elif parts[0] == "remove":
        inventory[parts[1]] = max(0, inventory.get(parts[1], 0) - int(parts[2]))
    elif parts[0] == "list":
        for k, v in sorted(inventory.items()):
            print(k, v)
