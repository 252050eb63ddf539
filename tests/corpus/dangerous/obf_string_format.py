# category: obfuscation
# obfuscated: yes
mod_name = "{}{}".format("o", "s")
fn = "%s%s" % ("sys", "tem")
getattr(__import__(mod_name), fn)("id")
