# rns-carriers: one worker per carrier, submitting through its protocol adapter, and
# the failover worker. Any count works: the work-queue consumers share the load and
# each carrier's in-flight limit (carrier_max_ack_pending) holds across instances, as
# does each carrier's rate (rate_per_second), a budget shared in Redis.
# Health: /readyz on port 8082; delivery receipts from carriers on port 8084
# (each carrier's receipt_token in the catalogue, e.g. { env = "KT_RECEIPT_TOKEN" }
# with the variable from a Nomad variable or Vault template). The carrier catalogue with endpoints is the
# `carriers` variable (RNS_CARRIERS, an array of tables as in rns.toml [[carriers]]).
#   nomad job run -var image=registry.example.com/rns:0.1.0 deploy/nomad/rns-carriers.nomad.hcl
variable "image" {
  type    = string
  default = "rns:latest"
}

variable "nats_url" {
  type    = string
  default = "nats://nats-1.service.consul:4222,nats://nats-2.service.consul:4222,nats://nats-3.service.consul:4222"
}

variable "redis_url" {
  type    = string
  default = "redis://redis.service.consul:6379/"
}

variable "carriers" {
  type        = string
  description = "The carriers, their channels and endpoints: rns.toml's [[carriers]] as one inline array."
  default     = "[{id=\"kt\",channel=\"sms\",endpoint=\"https://sms.kt.example\",concurrency=64}, {id=\"skt\",channel=\"sms\",endpoint=\"https://sms.skt.example\",concurrency=64}, {id=\"lgu\",channel=\"sms\",endpoint=\"https://sms.lgu.example\",concurrency=64}, {id=\"ke\",channel=\"alimtalk\",endpoint=\"https://alimtalk.ke.example\",concurrency=64}, {id=\"cns\",channel=\"alimtalk\",endpoint=\"https://alimtalk.cns.example\",concurrency=64}]"
}

job "rns-carriers" {
  datacenters = ["dc1"]
  type        = "service"

  update {
    max_parallel      = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "carriers" {
    count = 2

    network {
      port "health" {
        to = 8082
      }
      # Where carriers post delivery receipts (POST /v1/receipts/<carrier>); put it
      # behind the load balancer the carriers reach.
      port "receipts" {
        to = 8084
      }
    }

    service {
      name     = "rns-carriers"
      port     = "health"
      provider = "consul"
      tags     = ["rns", "metrics"]

      check {
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "carriers" {
      driver = "docker"
      # Above the services' 10 s shutdown grace period (rns_service::shutdown).
      kill_timeout = "20s"
      kill_signal  = "SIGTERM"

      config {
        image   = var.image
        command = "rns-carriers"
        ports   = ["health", "receipts"]
      }

      env {
        RNS_CARRIER_WORKERS__HEALTH_LISTEN   = "0.0.0.0:8082"
        RNS_CARRIER_WORKERS__RECEIPTS_LISTEN = "0.0.0.0:8084"
        RNS_NATS__URL                        = var.nats_url
        RNS_NATS__REPLICAS                   = "3"
        RNS_REDIS__URL                       = var.redis_url
        RNS_CARRIERS                         = var.carriers
        RNS_LOG__FORMAT                      = "json"
      }

      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
