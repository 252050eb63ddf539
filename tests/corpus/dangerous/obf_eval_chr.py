# category: dynamic-code
# obfuscated: yes
cmd = chr(95)*2 + "import" + chr(95)*2 + "('os').system('id')"
eval(cmd)
