"""send_and_wait.py over kombu's SQS transport: sqs_app's configuration, then the same script."""
import runpy
import sys

import sqs_app  # noqa: F401  (configures the shared app before send_and_wait imports it)

sys.argv = ["send_and_wait.py", *sys.argv[1:]]
runpy.run_path("send_and_wait.py", run_name="__main__")
