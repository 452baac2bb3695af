# A 3-node NATS JetStream cluster, one node per host (distinct_hosts), each with its
# own host volume (nats-1, nats-2, nats-3 in the clients' host_volume stanzas). The
# server configuration is nats/config/production.conf; run from the repository root:
#   nomad job run deploy/nomad/nats.nomad.hcl
# RNS jobs set RNS_NATS__REPLICAS=3, so every stream and bucket survives one node.
variable "nats_image" {
  type    = string
  default = "nats:2.15-alpine"
}

job "rns-nats" {
  datacenters = ["dc1"]
  type        = "service"

  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }

  # One node at a time, and only once the replaced one is healthy again, so the
  # cluster keeps its quorum through a rolling update.
  update {
    max_parallel     = 1
    min_healthy_time = "30s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "nats-1" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "nats-1"
      read_only = false
    }

    network {
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "monitor" {
        static = 8222
      }
    }

    service {
      name     = "nats-1"
      port     = "client"
      provider = "consul"
      tags     = ["rns", "nats"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "nats" {
      driver = "docker"
      # Lame-duck mode moves clients away first (lame_duck_duration in the config).
      kill_signal  = "SIGTERM"
      kill_timeout = "60s"

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      config {
        image        = var.nats_image
        network_mode = "host"
        args         = ["-c", "/local/nats.conf", "-sd", "/data/jetstream"]
      }

      env {
        NATS_SERVER_NAME = "nats-1"
        NATS_ROUTE_1     = "nats-route://nats-1.service.consul:6222"
        NATS_ROUTE_2     = "nats-route://nats-2.service.consul:6222"
        NATS_ROUTE_3     = "nats-route://nats-3.service.consul:6222"
      }

      template {
        data        = file("nats/config/production.conf")
        destination = "local/nats.conf"
      }

      resources {
        cpu    = 2000
        memory = 2048
      }
    }
  }
  group "nats-2" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "nats-2"
      read_only = false
    }

    network {
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "monitor" {
        static = 8222
      }
    }

    service {
      name     = "nats-2"
      port     = "client"
      provider = "consul"
      tags     = ["rns", "nats"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "nats" {
      driver = "docker"
      # Lame-duck mode moves clients away first (lame_duck_duration in the config).
      kill_signal  = "SIGTERM"
      kill_timeout = "60s"

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      config {
        image        = var.nats_image
        network_mode = "host"
        args         = ["-c", "/local/nats.conf", "-sd", "/data/jetstream"]
      }

      env {
        NATS_SERVER_NAME = "nats-2"
        NATS_ROUTE_1     = "nats-route://nats-1.service.consul:6222"
        NATS_ROUTE_2     = "nats-route://nats-2.service.consul:6222"
        NATS_ROUTE_3     = "nats-route://nats-3.service.consul:6222"
      }

      template {
        data        = file("nats/config/production.conf")
        destination = "local/nats.conf"
      }

      resources {
        cpu    = 2000
        memory = 2048
      }
    }
  }
  group "nats-3" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "nats-3"
      read_only = false
    }

    network {
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "monitor" {
        static = 8222
      }
    }

    service {
      name     = "nats-3"
      port     = "client"
      provider = "consul"
      tags     = ["rns", "nats"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "nats" {
      driver = "docker"
      # Lame-duck mode moves clients away first (lame_duck_duration in the config).
      kill_signal  = "SIGTERM"
      kill_timeout = "60s"

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      config {
        image        = var.nats_image
        network_mode = "host"
        args         = ["-c", "/local/nats.conf", "-sd", "/data/jetstream"]
      }

      env {
        NATS_SERVER_NAME = "nats-3"
        NATS_ROUTE_1     = "nats-route://nats-1.service.consul:6222"
        NATS_ROUTE_2     = "nats-route://nats-2.service.consul:6222"
        NATS_ROUTE_3     = "nats-route://nats-3.service.consul:6222"
      }

      template {
        data        = file("nats/config/production.conf")
        destination = "local/nats.conf"
      }

      resources {
        cpu    = 2000
        memory = 2048
      }
    }
  }
}
