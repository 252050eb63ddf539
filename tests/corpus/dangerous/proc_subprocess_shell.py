# category: process
# obfuscated: no
import subprocess

result = subprocess.run("cat /etc/hostname && whoami", shell=True, capture_output=True, text=True)
print(result.stdout)
