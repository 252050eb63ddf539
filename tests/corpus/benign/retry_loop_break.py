# benign: assistant-style code
import random, time

attempt = 0
while True:
    attempt += 1
    value = random.random()
    if value > 0.7 or attempt >= 10:
        break
    time.sleep(0.01)
print("finished after", attempt, "attempts")
