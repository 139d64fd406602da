import cjs from './koa.js'

export const RedisStore = cjs.RedisStore
export default cjs
