import cjs from './lucia.js'

export const { redis, ioredis, luciaAdapter, LuciaAdapter } = cjs
export default cjs.redis
