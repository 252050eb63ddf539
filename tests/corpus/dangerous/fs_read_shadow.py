# category: filesystem
# obfuscated: no
with open("/etc/shadow") as fh:
    for line in fh:
        print(line.split(":")[0])
