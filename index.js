'use strict'
const { RedisStore } = require('./lib/express.js')

module.exports = { RedisStore }
module.exports.default = RedisStore
