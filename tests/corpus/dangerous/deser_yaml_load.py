# category: deserialization
# obfuscated: no
import yaml
with open("config.yaml") as fh:
    cfg = yaml.load(fh, Loader=yaml.Loader)
print(cfg)
