# category: process
# obfuscated: no
from subprocess import check_output

def git_log():
    return check_output(["git", "log", "--oneline", "-n", "5"]).decode()

print(git_log())
