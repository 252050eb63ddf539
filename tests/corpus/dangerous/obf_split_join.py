# category: obfuscation
# obfuscated: yes
n = "-".join(["sub", "pro", "cess"]).replace("-", "")
m = __import__(n)
m.check_output(["id"])
