# category: dynamic-code
# obfuscated: no
# Program-built eval: conversion rules written as expressions over a value.
CONVERSIONS = [
    ("celsius", "fahrenheit", "{v} * 9 / 5 + 32"),
    ("km", "miles", "{v} / 1.609344"),
    ("kg", "pounds", "{v} * 2.20462"),
]
for unit, target, rule in CONVERSIONS:
    for value in (0, 10, 100):
        expression = rule.format(v=value)
        print(f"{value} {unit} = {eval(expression):.2f} {target}")
