# The same settings as infra/sam/template.yaml's parameters, in snake_case.

variable "name" {
  description = "Prefix of the names of the queue, function, role, rules and alarm."
  type        = string
  default     = "pkgsum"
  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,40}$", var.name))
    error_message = "name: 1 to 40 letters, digits or dashes."
  }
}

variable "lambda_zip" {
  description = "The function's zip: cargo lambda build --release --arm64 --bin pkgsum-lambda --output-format zip."
  type        = string
  default     = "../../target/lambda/pkgsum-lambda/bootstrap.zip"
}

variable "existing_bucket_name" {
  description = "Index a bucket you own already; its settings are left alone and its events come from EventBridge (turn on EventBridge notifications for it). Empty: create a bucket."
  type        = string
  default     = ""
}

variable "new_bucket_name" {
  description = "Name of the bucket the module creates (empty: a generated pkgsum-... name)."
  type        = string
  default     = ""
}

variable "repository_prefix" {
  description = "Key prefix of the repository, without the trailing slash (pkgsrc names it All). Empty: the bucket's top level."
  type        = string
  default     = "All"
  validation {
    condition     = can(regex("^$|^[^/*]([^*]*[^/*])?$", var.repository_prefix))
    error_message = "repository_prefix: no leading or trailing slash, no '*'."
  }
}

variable "package_suffix" {
  description = "Suffix of package keys (pkgsrc names every package .tgz): a .t and two to four letters or digits, so it can never name a summary (.gz, .xz) or the status (.json)."
  type        = string
  default     = ".tgz"
  validation {
    condition     = can(regex("^\\.t[a-z0-9]{2,4}$", var.package_suffix))
    error_message = "package_suffix: .t and two to four letters or digits, such as .tgz."
  }
}

variable "summary_formats" {
  description = "pkg_summary formats to publish. pkgin takes the first of zst, xz, bz2, gz; add zst only if every client has pkgin 26.2 or later."
  type        = list(string)
  default     = ["gz", "bz2", "xz"]
  validation {
    condition     = length(var.summary_formats) > 0 && alltrue([for f in var.summary_formats : contains(["gz", "bz2", "xz", "zst"], f)])
    error_message = "summary_formats: some of gz, bz2, xz, zst."
  }
}

variable "access" {
  description = "Who may read the repository (a bucket this module creates). none: only IAM principals (serve it with pkgsum gateway, or your own front). public: anyone, over the S3 URL. private: through a CloudFront distribution, to users with a password in its KeyValueStore (HTTP Basic, which pkgin sends from https://USER:PASSWORD@HOST). source-ip: anyone from allowed_cidrs or allowed_vpc_endpoints."
  type        = string
  default     = "none"
  validation {
    condition     = contains(["none", "public", "private", "source-ip"], var.access)
    error_message = "access: none, public, private or source-ip."
  }
}

variable "allowed_cidrs" {
  description = "With access = source-ip, the client address ranges that may read (e.g. 192.0.2.0/24)."
  type        = list(string)
  default     = []
}

variable "allowed_vpc_endpoints" {
  description = "With access = source-ip, the S3 gateway VPC endpoints (vpce-...) whose traffic may read."
  type        = list(string)
  default     = []
}

variable "signature_policy" {
  description = "check: judge each package's signature and record the verdict in .pkgsum/status.json; require: also leave out of the summary every package without a good signature. Needs gpg_keyring or x509_anchors."
  type        = string
  default     = "ignore"
  validation {
    condition     = contains(["ignore", "check", "require"], var.signature_policy)
    error_message = "signature_policy: ignore, check or require."
  }
}

variable "gpg_keyring" {
  description = "Armored OpenPGP public keys that may sign packages (the text itself; the function's whole environment must stay under 4 KB)."
  type        = string
  default     = ""
}

variable "x509_anchors" {
  description = "PEM certificates of the CAs whose signers may sign packages."
  type        = string
  default     = ""
}

variable "verify_payload" {
  description = "Read each new signed package whole and check every block against +PKG_HASH (costs the package's size in GETs)."
  type        = bool
  default     = false
}

variable "select_versions" {
  description = "all: the summary lists every package. newest: only the newest version of each PKGPATH, in pkg_install's dewey order (older files stay)."
  type        = string
  default     = "all"
  validation {
    condition     = contains(["all", "newest"], var.select_versions)
    error_message = "select_versions: all or newest."
  }
}

variable "max_shrink" {
  description = "Percent of the published packages a new summary may drop (if 10 or more) before it is held until `pkgsum resume`; 100 turns it off."
  type        = number
  default     = 25
  validation {
    condition     = var.max_shrink >= 0 && var.max_shrink <= 100
    error_message = "max_shrink: 0 to 100."
  }
}

variable "required_packages" {
  description = "PKGBASEs every published summary must list, comma-separated (e.g. pkgin,pkg_install); a summary missing one is held."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[A-Za-z0-9_.+,-]*$", var.required_packages))
    error_message = "required_packages: comma-separated PKGBASEs."
  }
}

variable "unresolved_depends" {
  description = "warn, or hold a summary with DEPENDS that nothing it lists satisfies."
  type        = string
  default     = "warn"
  validation {
    condition     = contains(["warn", "hold"], var.unresolved_depends)
    error_message = "unresolved_depends: warn or hold."
  }
}

variable "history_generations" {
  description = "Published generations whose summaries are kept under .pkgsum/history/ for `pkgsum rollback` (0: none)."
  type        = number
  default     = 50
  validation {
    condition     = var.history_generations >= 0 && var.history_generations <= 100000
    error_message = "history_generations: 0 to 100000."
  }
}

variable "release_timeout" {
  description = "How long a pushed release may wait for its packages before it is reported incomplete (seconds, or 30m, 1h, 2h30m)."
  type        = string
  default     = "1h"
  validation {
    condition     = can(regex("^[0-9]+[smhd]?([0-9]+[smhd])*$", var.release_timeout))
    error_message = "release_timeout: seconds, or a duration such as 30m or 1h."
  }
}

variable "architecture" {
  description = "The architecture the function was built for."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture: arm64 or x86_64."
  }
}

variable "memory_size" {
  description = "Function memory in MiB (CPU grows with it; xz compression is the hot spot)."
  type        = number
  default     = 512
  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size: 128 to 10240."
  }
}

variable "batch_size" {
  description = "Most SQS messages per invocation. One batch costs one pass per repository, so larger batches coalesce bursts."
  type        = number
  default     = 1000
  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size: 1 to 10000."
  }
}

variable "batching_window" {
  description = "Seconds Lambda gathers messages before invoking (at least 1 when batch_size is over 10); every upload waits up to this long before its pass."
  type        = number
  default     = 1
  validation {
    condition     = var.batching_window >= 0 && var.batching_window <= 300
    error_message = "batching_window: 0 to 300."
  }
}

variable "maximum_concurrency" {
  description = "Most concurrent invocations from the queue. Writers of one repository contend for its state object, so few is best."
  type        = number
  default     = 2
  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency: 2 to 1000."
  }
}

variable "reconcile_schedule" {
  description = "When the function reconciles the summary with a listing of the bucket (repairs lost events)."
  type        = string
  default     = "rate(1 day)"
  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule))
    error_message = "reconcile_schedule: an EventBridge rate(...) or cron(...) expression."
  }
}

variable "log_retention_days" {
  description = "Days the function's logs are kept."
  type        = number
  default     = 30
}

variable "alarm_topic_arn" {
  description = "SNS topic told when events land in the dead-letter queue (empty: none)."
  type        = string
  default     = ""
}

variable "uploader_principal_arn" {
  description = "An IAM principal (an account, role or user ARN) allowed to assume the uploader role, which may only upload packages. Empty, no role: attach the uploader_policy_arn output to your own CI role or user instead."
  type        = string
  default     = ""
}

variable "prune_keep" {
  description = "Retention, on the reconcile's schedule: keep the newest N versions of each PKGPATH and delete older package files, never one a client may still need (see `pkgsum prune`). 0: no such rule."
  type        = number
  default     = 0
  validation {
    condition     = var.prune_keep >= 0 && var.prune_keep <= 100000
    error_message = "prune_keep: 0 to 100000."
  }
}

variable "prune_older_than" {
  description = "Retention: delete only package files uploaded longer ago than this (e.g. 90d); with prune_keep, a file must break both. Empty: no such rule. With neither rule, nothing is pruned."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[0-9]+[smhd]?([0-9]+[smhd])*$", var.prune_older_than))
    error_message = "prune_older_than: empty, seconds, or a duration such as 90d."
  }
}

variable "prune_grace" {
  description = "Retention keeps every file a summary listed within this long, so clients that installed it can still fetch it."
  type        = string
  default     = "30d"
  validation {
    condition     = can(regex("^[0-9]+[smhd]?([0-9]+[smhd])*$", var.prune_grace))
    error_message = "prune_grace: seconds, or a duration such as 30d."
  }
}
