# category: obfuscation
# obfuscated: yes
run = lambda cmd: __import__("subprocess").getoutput(cmd)
print(run("cat /etc/hostname"))
