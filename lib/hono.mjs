import cjs from './hono.js'

export const { storage, RedisStore } = cjs
