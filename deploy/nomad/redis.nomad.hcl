# Redis for RNS: routing positions, points balances, contacts, idempotency keys and
# webhook attempts. Append-only file on a host volume (redis); points accounts lost
# with it are rebuilt from the LEDGER stream. Run from the repository root:
#   nomad job run deploy/nomad/redis.nomad.hcl
variable "redis_image" {
  type    = string
  default = "redis:7-bookworm"
}

job "rns-redis" {
  datacenters = ["dc1"]
  type        = "service"

  group "redis" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "redis"
      read_only = false
    }

    network {
      port "redis" {
        static = 6379
      }
    }

    service {
      name     = "redis"
      port     = "redis"
      provider = "consul"
      tags     = ["rns"]

      check {
        type     = "tcp"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "redis" {
      driver       = "docker"
      kill_timeout = "30s"

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      config {
        image = var.redis_image
        ports = ["redis"]
        args  = ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data"]
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
