// Daily bandwidth per interface, as an InfluxDB 2 task.
option task = {name: "bandwidth-daily", every: 1d, offset: 15m}

from(bucket: "telegraf/autogen")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "interface" and r._field == "ifHCInOctets")
    |> filter(fn: (r) => r.agent_host =~ /^sw/)
    |> derivative(unit: 1s, nonNegative: true)
    |> aggregateWindow(every: 1d, fn: mean, createEmpty: false)
    |> set(key: "_measurement", value: "interface_daily")
    |> to(bucket: "rollups", org: "example")
