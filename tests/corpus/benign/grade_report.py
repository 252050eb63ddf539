# benign: assistant-style code
grades = {"math": [90, 85, 77], "art": [100, 95], "history": [70, 68, 88, 91]}
for subject, marks in grades.items():
    avg = sum(marks) / len(marks)
    letter = "A" if avg >= 90 else "B" if avg >= 80 else "C" if avg >= 70 else "D"
    print(f"{subject:<10}{avg:6.1f} {letter}")
