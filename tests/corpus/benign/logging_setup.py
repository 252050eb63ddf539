# benign: assistant-style code
import logging

logging.basicConfig(filename="app.log", level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("app")
for i in range(3):
    log.info("processing batch %d", i)
log.warning("done with warnings")
