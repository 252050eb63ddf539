# category: escape
# obfuscated: yes
o = getattr(getattr((), "__cla" + "ss__"), "__ba" + "se__")
subs = getattr(o, "__subcl" + "asses__")()
print(len(subs))
