# The HTTP API (rns-gateway): stateless, scale with `count`. Health: /readyz on the
# API port. Configuration through RNS_* environment variables (see rns.toml); the
# admin key comes from the Nomad variable nomad/jobs/rns-gateway (key admin_key).
#   nomad job run -var image=registry.example.com/rns:0.1.0 deploy/nomad/rns-gateway.nomad.hcl
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

variable "clickhouse_url" {
  type    = string
  default = "http://clickhouse.service.consul:8123"
}

variable "carriers" {
  type        = string
  description = "The carrier catalogue, the same in every RNS job (this one reads id and channel): rns.toml's [[carriers]] as one inline array."
  default     = "[{id=\"kt\",channel=\"sms\",endpoint=\"https://sms.kt.example\",concurrency=64}, {id=\"skt\",channel=\"sms\",endpoint=\"https://sms.skt.example\",concurrency=64}, {id=\"lgu\",channel=\"sms\",endpoint=\"https://sms.lgu.example\",concurrency=64}, {id=\"ke\",channel=\"alimtalk\",endpoint=\"https://alimtalk.ke.example\",concurrency=64}, {id=\"cns\",channel=\"alimtalk\",endpoint=\"https://alimtalk.cns.example\",concurrency=64}]"
}

job "rns-gateway" {
  datacenters = ["dc1"]
  type        = "service"

  update {
    max_parallel      = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "2m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "gateway" {
    count = 2

    network {
      port "http" {
        to = 8080
      }
    }

    service {
      name     = "rns-gateway"
      port     = "http"
      provider = "consul"
      tags     = ["rns", "http"]

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

    task "gateway" {
      driver = "docker"
      # Above the services' 10 s shutdown grace period (rns_service::shutdown).
      kill_timeout = "20s"
      kill_signal  = "SIGTERM"

      config {
        image   = var.image
        command = "rns-gateway"
        ports   = ["http"]
      }

      env {
        RNS_GATEWAY__LISTEN    = "0.0.0.0:8080"
        RNS_NATS__URL          = var.nats_url
        RNS_NATS__REPLICAS     = "3"
        RNS_REDIS__URL         = var.redis_url
        RNS_CLICKHOUSE__URL    = var.clickhouse_url
        RNS_CARRIERS = var.carriers
        RNS_LOG__FORMAT        = "json"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/rns-gateway\" }}RNS_GATEWAY__ADMIN_KEY={{ .admin_key }}{{ end }}"
        destination = "secrets/admin.env"
        env         = true
      }

      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
