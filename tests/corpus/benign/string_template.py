# benign: assistant-style code
from string import Template

t = Template("Dear $name, your order #$order ships on $date.")
orders = [("Ana", 1001, "Mon"), ("Ben", 1002, "Tue")]
for name, order, date in orders:
    print(t.substitute(name=name, order=order, date=date))
