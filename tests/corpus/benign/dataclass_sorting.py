# benign: assistant-style code
from dataclasses import dataclass
from operator import attrgetter

@dataclass(order=True)
class Employee:
    dept: str
    name: str
    salary: int

staff = [Employee("eng", "Zoe", 120), Employee("ops", "Al", 90), Employee("eng", "Bo", 110)]
for e in sorted(staff, key=attrgetter("dept", "salary")):
    print(e)
