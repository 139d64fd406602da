import cjs from './express.js'

export const RedisStore = cjs.RedisStore
export default cjs.RedisStore
