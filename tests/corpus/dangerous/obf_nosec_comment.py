# category: process
# obfuscated: yes
import subprocess
subprocess.Popen("id", shell=True)  # nosec
import os  # nosemgrep
os.system("id")  # nosec B605 nosemgrep
