# category: dynamic-code
# obfuscated: no
list(map(eval, ["__import__(\"os\").system(\"id\")"]))
