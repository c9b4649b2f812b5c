"""A LocalStack Lambda runtime executor that runs a function's `bootstrap`
as a host process instead of in a Docker container.

LocalStack runs Lambda functions only through Docker, which this machine
does not have; without an executor, CloudFormation cannot even create a
function. This one serves the Lambda Runtime API
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) on
127.0.0.1 to one `bootstrap` process per execution environment, so
LocalStack's own SQS poller, event rules and Invoke API drive the real
binary. Only `provided.*` runtimes (a native `bootstrap`) are supported.

Selected with LAMBDA_RUNTIME_EXECUTOR=pkgsum-process (localstack/start.sh).
"""

import json
import logging
import os
import queue
import subprocess
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localstack.services.lambda_.invocation.lambda_models import InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)
API = "/2018-06-01/runtime"
STARTUP_SECONDS = 20
# A payload the function never answers must not hold the poller forever.
INVOKE_SECONDS = 905


class RuntimeApi(ThreadingHTTPServer):
    """The Runtime API for one bootstrap process: one invocation at a time."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.pending: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.init_error: bytes | None = None
        self.result: Future | None = None
        self.deadline_ms = 0
        self.function_arn = ""


class RuntimeApiHandler(BaseHTTPRequestHandler):
    server: RuntimeApi

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        LOG.debug("runtime api: " + format, *args)

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path != f"{API}/invocation/next":
            return self._answer(404)
        self.server.ready.set()
        invocation = self.server.pending.get()
        if invocation is None:  # shutting down
            return self._answer(410)
        self._answer(
            200,
            invocation["payload"].encode(),
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": invocation["invoke-id"],
                "Lambda-Runtime-Deadline-Ms": str(self.server.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation["invoked-function-arn"],
                "Lambda-Runtime-Trace-Id": invocation.get("trace-id", ""),
            },
        )

    def do_POST(self):
        body = self._body()
        parts = self.path[len(API) :].strip("/").split("/")
        if parts == ["init", "error"]:
            self.server.init_error = body
            self.server.ready.set()
            return self._answer(202)
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            result = self.server.result
            if result is not None and not result.done():
                result.set_result((parts[1], body, parts[2] == "error"))
            return self._answer(202)
        return self._answer(404)


class ProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id, function_version):
        super().__init__(id, function_version)
        self.api: RuntimeApi | None = None
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.lock = threading.Lock()

    def _code_dir(self) -> Path:
        return Path(self.function_version.config.code.get_unzipped_code_location())

    def start(self, env_vars: dict[str, str]) -> None:
        self.api = RuntimeApi()
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        env = {key: str(value) for key, value in env_vars.items()}
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.api.server_address[1]}"
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        code = self._code_dir()
        bootstrap = code / "bootstrap"
        if not bootstrap.is_file():
            raise LambdaRuntimeException(f"no bootstrap in the function's code ({code})")
        bootstrap.chmod(0o755)
        self.log_path = code.parent / f"{self.id}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(bootstrap)], cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.api.ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LambdaRuntimeException(f"bootstrap did not start: {self.get_logs()[-2000:]}")
        if self.api.init_error is not None:
            message = self.api.init_error.decode(errors="replace")
            self.stop()
            raise LambdaRuntimeException(f"bootstrap init error: {message}")

    def stop(self) -> None:
        if self.api is not None:
            self.api.pending.put(None)
            self.api.shutdown()
            self.api.server_close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1/_localstack_lambda/{self.id}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        with self.lock:
            start = self._log_size()
            timeout = int(self.function_version.config.timeout)
            self.api.deadline_ms = int((time.time() + timeout) * 1000)
            self.api.result = Future()
            self.api.pending.put(payload)
            request_id, body, is_error = self._wait_for_result(payload["invoke-id"])
            logs = self._read_logs(start)
            if is_error:
                # The shape Lambda reports for a function error.
                try:
                    json.loads(body)
                except ValueError:
                    body = json.dumps({"errorMessage": body.decode(errors="replace")}).encode()
            return InvocationResult(request_id, body, is_error=is_error, logs=logs)

    def _wait_for_result(self, request_id: str):
        """The function's answer; an error if it exits or never answers."""
        deadline = time.monotonic() + INVOKE_SECONDS
        while True:
            try:
                return self.api.result.result(timeout=0.1)
            except TimeoutError:
                pass
            if self.process.poll() is not None:
                # What Lambda reports when the runtime dies mid-invocation.
                message = f"Runtime exited with status {self.process.returncode}"
                body = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message})
                return request_id, body.encode(), True
            if time.monotonic() > deadline:
                raise LambdaRuntimeException("bootstrap did not answer")

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def _read_logs(self, start: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def get_logs(self) -> str:
        return self._read_logs(0)

    @classmethod
    def prepare_version(cls, function_version) -> None:
        code = function_version.config.code
        if code is None:
            raise LambdaRuntimeException("only zip packages with a bootstrap are supported")
        code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "pkgsum-process"

    def load(self, *args, **kwargs):
        return ProcessRuntimeExecutor
